module github.com/sentinel-iot/sentinel/cmd/sentinel

go 1.26

require (
	github.com/eclipse/paho.golang v0.23.0
	github.com/sentinel-iot/sentinel/analytics v0.0.0
	github.com/sentinel-iot/sentinel/broker v0.0.0
	github.com/sentinel-iot/sentinel/ingestor v0.0.0
	github.com/sentinel-iot/sentinel/proto v0.0.0
	github.com/sentinel-iot/sentinel/quantile v0.0.0
	github.com/sentinel-iot/sentinel/recoverer v0.0.0
	github.com/sentinel-iot/sentinel/simulator v0.0.0
	github.com/sentinel-iot/sentinel/warehouse v0.0.0
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/ClickHouse/ch-go v0.75.0 // indirect
	github.com/ClickHouse/clickhouse-go/v2 v2.51.0 // indirect
	github.com/andybalholm/brotli v1.2.7 // indirect
	github.com/brianvoe/gofakeit/v6 v6.28.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/ebitengine/purego v0.11.3 // indirect
	github.com/go-faster/city v1.0.1 // indirect
	github.com/go-faster/errors v0.8.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/mochi-mqtt/server/v2 v2.7.9 // indirect
	github.com/paulmach/orb v0.14.0 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/rs/xid v1.4.0 // indirect
	github.com/segmentio/asm v1.2.1 // indirect
	github.com/shopspring/decimal v1.6.0 // indirect
	go.opentelemetry.io/otel v1.47.0 // indirect
	go.opentelemetry.io/otel/trace v1.47.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace (
	github.com/sentinel-iot/sentinel/analytics => ../../analytics
	github.com/sentinel-iot/sentinel/broker => ../../broker
	github.com/sentinel-iot/sentinel/credentials => ../../credentials
	github.com/sentinel-iot/sentinel/ingestor => ../../ingestor
	github.com/sentinel-iot/sentinel/proto => ../../proto
	github.com/sentinel-iot/sentinel/quantile => ../../quantile
	github.com/sentinel-iot/sentinel/recoverer => ../../recoverer
	github.com/sentinel-iot/sentinel/simulator => ../../simulator
	github.com/sentinel-iot/sentinel/warehouse => ../../warehouse
)
