// Package sim is holdfast's deterministic partition simulator. It drives
// the real escrow.Node of every region — the code the region runtime runs —
// through a simulated world, checks the safety claims of DESIGN.md and
// measures what partitions cost.
//
// # The world
//
// One goroutine, a seeded PRNG (math/rand/v2 PCG, independent streams for
// topology, faults, workload, restocks and network so that strategies and
// injected bugs see the same shoppers and faults), a virtual clock and an
// event queue ordered by (time, insertion sequence). Each region runs the
// runtime loop of the region package: Step, then, when no synced write is in
// flight, Ready → persist (durable only after a simulated fsync latency;
// one write at a time, so later Readies group-commit) → send → reply →
// Advance. A crash loses the write in flight and all memory; the node is
// rebuilt with escrow.NewNode(cfg, state from the simulated disk).
//
// Faults (--faults none|all|a comma list of names, faultset.go) run during
// the first 80% of the workload and then heal: partitions (halves, one
// region isolated, a non-transitive bridge), crash (regions and daemons
// crash and restart), spike (delay on a link), lossy (message drop 2%,
// duplication 1%, reordering 5%), skew (±1s per region, whole run), jump
// (a region's clock jumps forward or back), stall (fsync tail and stalls,
// a watchdog kill), pause (a region's process stops for seconds), asym
// (one-way partitions), replay (minutes-old messages delivered again),
// corrupt (bits flipped inside the signed envelope) and linkloss (a
// shopper's requests and replies lost), and membership (a region added
// and another removed under load by the operator's procedure,
// membership.go). The region runtime adds storage faults: midsync, torn,
// recovery, diskfull (storage_faults.go), and wipe, rollback, fsynclie,
// bitflip, which send one region's store back in time for the store fence
// to catch (storage_faults_fence.go, storage_faults_bitflip.go). "all" is
// every one of them but the last four. Clients retry a
// hold with the same idempotency key when no answer comes, and 20% of
// carts are abandoned and must expire.
//
// # Checkers
//
//   - oversell: at every Ready, over every region's latest own rows,
//     Σ Sold + Σ held ≤ Σ Minted − Σ Shrunk (reported in units).
//   - lost_acked: every hold whose reply reached a client is, at every
//     restart of its owner and at the end, in the owner's durable state in
//     that state or a legal later one, with the same lines; no later reply
//     contradicts it.
//   - unreturned: at every durable write, the own row's Reserved, Sold and
//     Released equal the sums over that region's durable holds (so units of
//     expired holds come back as Released); at the end no hold past its
//     deadline is still held.
//   - conservation_errors: at every Ready, the stepping region's true
//     available count (over every owner's latest row) is not negative (it
//     spent only units it owned); at the end, View.CheckConservation over
//     the owners' rows and over every converged region's view.
//   - unconverged: every row version that existed at heal time reaches
//     every region within 60s; after quiescence every copy of every row
//     equals its owner's row within 30s.
//   - liveness_failures: after quiescence, a 1-unit hold of a SKU with
//     stock somewhere (at the region the strategy says can get it) is
//     granted within a few tries.
//   - double_holds, corrupt_accepted, clock_errors, row_regressions,
//     stale_borrows_honoured, membership_errors: the checkers of the named
//     faults (checks_named.go, faults_wire.go, stale_borrow.go,
//     membership.go).
//   - panics: escrow or the simulator panicked, or the run exceeded its
//     event budget (a message storm); the seed fails, the sweep goes on.
//
// # Metrics
//
// false_reject_rate: carts refused (or unanswered) while every line's
// units existed somewhere, over all carts. stranded_at_sellout: mean units
// still available anywhere when a region first refuses a SKU for lack of
// stock since its last restock (flash: the flash SKU). msgs_per_hold:
// inter-region messages per cart. p50/p99_hold_ms: virtual latency of
// answered holds. max_converge_ms: heal → every heal-time row version
// everywhere.
//
// # Strategies
//
// escrow (borrow on miss, low-water top-up), static (fixed slices: borrow
// requests are dropped, no top-up) and central (all stock in the first
// region; the others forward every command to it). A strategy is one file:
// implement Strategy and call RegisterStrategy from init. Non-region actors
// such as the rebalancer are Daemons: they hear broadcasts, tick, send
// advice, sit at a region's site and crash with faults=all.
//
// # Running
//
//	go run ./cmd/holdfast sim --seeds 1-20 --regions 5 --faults all --workload flash
//	go run ./cmd/holdfast sim --seeds 1-20 --faults all --compare escrow,static,central
//	go run ./cmd/holdfast sim --seed 7 --faults all --report /tmp/seed7.html --trace /tmp/seed7.txt
//	go test ./sim                                  # short sweep and bug-injection tests
//	HOLDFAST_SIM_SEEDS=200 go test ./sim -run Sweep -timeout 1h   # long sweep
//	go test ./sim -run XXX -bench Sim              # events/s
//
// The same arguments give byte-identical stdout whatever --workers is;
// events/s goes to stderr. The last line is key=value; the exit status is 1
// when a checker failed, after the command that replays the failing seed.
package sim
