// Package soak runs holdfast as real processes under faults and checks the
// outcome: three `holdfast region` processes, each on its own `holdfast
// nats` server, the servers linked through fault proxies (a partition is a
// proxy cut), the rebalancer, and shoppers over HTTP. Every period one
// region is killed with SIGKILL and restarted, and one link is cut and
// healed. At the end everything is healed and, once the regions converge,
// the checker (check.go) looks for lost acknowledged holds, duplicate holds
// of one idempotency key, broken conservation and oversell.
//
// `holdfast soak` (hidden) and bench/soak.sh drive it; docs/operations.md
// ("Soak") has the last 10-minute result.
package soak
