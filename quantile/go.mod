module github.com/sentinel-iot/sentinel/quantile

go 1.26
