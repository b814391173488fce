package main
import (
 _ "github.com/cockroachdb/pebble/v2"
 _ "github.com/nats-io/nats.go"
 _ "github.com/nats-io/nats-server/v2/server"
 _ "github.com/spf13/cobra"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "gopkg.in/yaml.v3"
)
func main(){}
