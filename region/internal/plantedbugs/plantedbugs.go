// Package plantedbugs holds the test-only bugs that can be planted in the
// region runtime, so that tests and the simulator can show that their
// checkers catch them. Production never sets any: region.Config carries a
// Set, and only region/regiontest (importable by tests and the simulator)
// turns one on.
package plantedbugs

// Set is the planted bugs of one region runtime. The zero value plants none.
type Set struct {
	// ReplyBeforeSync: the committer answers a batch's callers as soon as
	// the batch is written, before its fsync (the durability rule broken).
	ReplyBeforeSync bool
}

// Any reports whether a bug is planted.
func (s Set) Any() bool { return s.ReplyBeforeSync }
