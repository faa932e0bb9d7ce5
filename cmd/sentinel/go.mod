module github.com/sentinel-iot/sentinel/cmd/sentinel

go 1.26

require (
	github.com/sentinel-iot/sentinel/analytics v0.0.0
	github.com/sentinel-iot/sentinel/broker v0.0.0
	github.com/sentinel-iot/sentinel/ingestor v0.0.0
	github.com/sentinel-iot/sentinel/proto v0.0.0
	github.com/sentinel-iot/sentinel/recoverer v0.0.0
	github.com/sentinel-iot/sentinel/simulator v0.0.0
	github.com/sentinel-iot/sentinel/warehouse v0.0.0
)

replace (
	github.com/sentinel-iot/sentinel/analytics => ../../analytics
	github.com/sentinel-iot/sentinel/broker => ../../broker
	github.com/sentinel-iot/sentinel/ingestor => ../../ingestor
	github.com/sentinel-iot/sentinel/proto => ../../proto
	github.com/sentinel-iot/sentinel/recoverer => ../../recoverer
	github.com/sentinel-iot/sentinel/simulator => ../../simulator
	github.com/sentinel-iot/sentinel/warehouse => ../../warehouse
)
