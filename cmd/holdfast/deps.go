package main

// The modules the packages of holdfast build on, kept in go.mod while those
// packages are written. Remove an import once a package uses it.
import (
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "gopkg.in/yaml.v3"
)
