module github.com/sentinel-iot/sentinel/proto

go 1.26
