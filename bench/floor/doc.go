// Package floor holds micro-benchmarks of what a durable HTTP hold cannot
// avoid on a machine: one fdatasync of a small WAL append (a lone caller's
// commit) and one HTTP/1.1 request answered with fixed bytes over
// loopback TCP (net/http, fasthttp, and gnet's event loop with a minimal
// framing that is a measurement floor, not a production parser), and the
// same answered through one committer goroutine that takes a group of
// requests at a time, as holdfast's apply loop does
// (BenchmarkHandoffHTTPFloor). They bound what holdfast can reach per node;
// see docs/benchmarks.md "Where a hold's time goes" and "An event-loop HTTP
// server's floor against fasthttp's". Run from the bench module:
//
//	cd bench && go test ./floor -run '^$' -bench . -benchtime 20000x
//
// FLOOR_SPLIT=1 runs each server in a child process and reports the
// server's and the client's CPU apart (srv-cpu-us/req, cli-cpu-us/req);
// split_test.go names the other knobs.
package floor
