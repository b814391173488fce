// Package eventlog makes a region's hold and stock events durable and
// delivers them: the CloudEvents 1.0 form of an escrow.Event (cloudevents.go),
// the outbox the region writes in the same Pebble batch as the change
// (outbox.go, keys.go), and the subjects and interfaces of the relay that
// publishes the outbox, in order and at least once, to a JetStream stream
// whose duplicate window makes delivery effectively once (subjects.go; the
// relay itself is eventlog/jsrelay, so that the region runtime and the
// simulator above it link no NATS client). docs/events.md describes
// the format.
//
// The package knows neither the region runtime nor the NATS transport of
// peers: it depends on escrow (the events), api (the hold view), Pebble and
// nothing networked (the layering table holds it to that).
package eventlog
