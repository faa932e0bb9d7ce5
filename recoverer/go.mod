module github.com/sentinel-iot/sentinel/recoverer

go 1.26.0

require github.com/sentinel-iot/sentinel/proto v0.0.0

replace github.com/sentinel-iot/sentinel/proto => ../proto

require github.com/sentinel-iot/sentinel/warehouse v0.0.0

require github.com/stretchr/testify v1.12.1 // indirect

replace github.com/sentinel-iot/sentinel/warehouse => ../warehouse
