module github.com/sentinel-iot/sentinel/simulator

go 1.26

require github.com/sentinel-iot/sentinel/proto v0.0.0

require (
	github.com/brianvoe/gofakeit/v6 v6.28.0 // indirect
	github.com/eclipse/paho.golang v0.23.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/mochi-mqtt/server/v2 v2.7.9 // indirect
	github.com/rs/xid v1.4.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
)

replace github.com/sentinel-iot/sentinel/proto => ../proto
