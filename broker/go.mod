module github.com/sentinel-iot/sentinel/broker

go 1.26

require github.com/sentinel-iot/sentinel/proto v0.0.0

replace github.com/sentinel-iot/sentinel/proto => ../proto
