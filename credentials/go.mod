module github.com/sentinel-iot/sentinel/credentials

go 1.26.0

require golang.org/x/crypto v0.59.0
