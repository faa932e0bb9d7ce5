module github.com/sentinel-iot/sentinel/cmd/sentinel

go 1.26

require github.com/sentinel-iot/sentinel/proto v0.0.0

replace github.com/sentinel-iot/sentinel/proto => ../../proto

require github.com/sentinel-iot/sentinel/warehouse v0.0.0

replace github.com/sentinel-iot/sentinel/warehouse => ../../warehouse

require github.com/sentinel-iot/sentinel/broker v0.0.0

replace github.com/sentinel-iot/sentinel/broker => ../../broker

require github.com/sentinel-iot/sentinel/simulator v0.0.0

replace github.com/sentinel-iot/sentinel/simulator => ../../simulator

require github.com/sentinel-iot/sentinel/ingestor v0.0.0

replace github.com/sentinel-iot/sentinel/ingestor => ../../ingestor

require github.com/sentinel-iot/sentinel/recoverer v0.0.0

replace github.com/sentinel-iot/sentinel/recoverer => ../../recoverer

require github.com/sentinel-iot/sentinel/analytics v0.0.0

replace github.com/sentinel-iot/sentinel/analytics => ../../analytics
