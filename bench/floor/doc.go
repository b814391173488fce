// Package floor holds micro-benchmarks of what a durable HTTP hold cannot
// avoid on a machine: one fdatasync of a small WAL append (a lone caller's
// commit) and one HTTP/1.1 request answered with fixed bytes over
// loopback TCP (net/http, and fasthttp for comparison). They bound what
// holdfast can reach per node; see docs/benchmarks.md "Where a hold's time
// goes". Run from the bench module:
//
//	cd bench && go test ./floor -run '^$' -bench . -benchtime 20000x
package floor
