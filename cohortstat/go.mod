module github.com/sentinel-iot/sentinel/cohortstat

go 1.26
