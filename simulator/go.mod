module github.com/sentinel-iot/sentinel/simulator

go 1.26

require (
	github.com/brianvoe/gofakeit/v6 v6.28.0
	github.com/eclipse/paho.golang v0.23.0
	github.com/mochi-mqtt/server/v2 v2.7.9
	github.com/sentinel-iot/sentinel/proto v0.0.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/rs/xid v1.4.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.43.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/sentinel-iot/sentinel/proto => ../proto

// mochi v2.7.9 with Sentinel's patches; see third_party/mochi-mqtt-server/README.sentinel.md.
replace github.com/mochi-mqtt/server/v2 v2.7.9 => ../third_party/mochi-mqtt-server
