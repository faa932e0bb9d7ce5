module github.com/sentinel-iot/sentinel/analytics

go 1.26

require github.com/sentinel-iot/sentinel/warehouse v0.0.0

replace github.com/sentinel-iot/sentinel/warehouse => ../warehouse
