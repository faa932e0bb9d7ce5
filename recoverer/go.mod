module github.com/sentinel-iot/sentinel/recoverer

go 1.26

require github.com/sentinel-iot/sentinel/proto v0.0.0

replace github.com/sentinel-iot/sentinel/proto => ../proto

require github.com/sentinel-iot/sentinel/warehouse v0.0.0

replace github.com/sentinel-iot/sentinel/warehouse => ../warehouse
