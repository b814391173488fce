package escrow

import (
	"slices"
	"strings"
	"time"
)

// MemHolds is an in-memory HoldSource for tests and the simulator: the
// runtime applies each persisted batch to it (Apply). Its expiry indexes
// are derived from the stored holds and keys (every HELD hold at its
// deadline, every key at its expiry): what an exact store index holds.
type MemHolds struct {
	holds map[string]Hold
	idem  map[string]IdemEntry
	// Fail, when set, is returned by every read (tests of a failing store).
	Fail error
	// Reads counts StoredHold and StoredIdem calls; Scans the Due calls.
	Reads, Scans uint64
}

// NewMemHolds returns an empty MemHolds.
func NewMemHolds() *MemHolds {
	return &MemHolds{holds: make(map[string]Hold), idem: make(map[string]IdemEntry)}
}

// Apply stores the holds and keys of p and applies its deletes (a batch
// never puts and deletes one key: see Persist).
func (m *MemHolds) Apply(p *Persist) {
	for i := range p.Holds {
		m.holds[p.Holds[i].ID] = p.Holds[i].Clone()
	}
	for _, id := range p.DeletedHolds {
		delete(m.holds, id)
	}
	for _, e := range p.Idem {
		m.idem[e.Key] = e
	}
	for _, k := range p.DeletedIdem {
		delete(m.idem, k)
	}
}

// Len returns the number of holds stored.
func (m *MemHolds) Len() int { return len(m.holds) }

// Held returns the number of HELD holds stored (State.HeldHolds).
func (m *MemHolds) Held() uint64 { return HeldIn(m.holds) }

// Newest returns the greatest hold id stored ("" if none: State.NewestHold).
func (m *MemHolds) Newest() string { return NewestIn(m.holds) }

// StoredHold implements HoldSource.
func (m *MemHolds) StoredHold(id string) (Hold, bool, error) {
	m.Reads++
	if m.Fail != nil {
		return Hold{}, false, m.Fail
	}
	h, ok := m.holds[id]
	if !ok {
		return Hold{}, false, nil
	}
	return h.Clone(), true, nil
}

// StoredIdem implements HoldSource.
func (m *MemHolds) StoredIdem(key string) (IdemEntry, bool, error) {
	m.Reads++
	if m.Fail != nil {
		return IdemEntry{}, false, m.Fail
	}
	e, ok := m.idem[key]
	return e, ok, nil
}

// DueHolds implements HoldSource.
func (m *MemHolds) DueHolds(t time.Time, max int, dst []Deadline) ([]Deadline, time.Time, error) {
	m.Scans++
	if m.Fail != nil {
		return dst, time.Time{}, m.Fail
	}
	d, next := DueHoldsIn(m.holds, t, max, dst)
	return d, next, nil
}

// DueIdem implements HoldSource.
func (m *MemHolds) DueIdem(t time.Time, max int, dst []Deadline) ([]Deadline, time.Time, error) {
	m.Scans++
	if m.Fail != nil {
		return dst, time.Time{}, m.Fail
	}
	d, next := DueIdemIn(m.idem, t, max, dst)
	return d, next, nil
}

// The in-memory hold sources (MemHolds, the simulator's disk) answer from
// whole maps of what was persisted; these helpers are their one copy of
// that logic.

// HeldIn counts the HELD holds of holds (State.HeldHolds).
func HeldIn(holds map[string]Hold) uint64 {
	var k uint64
	for _, h := range holds {
		if h.State == Held {
			k++
		}
	}
	return k
}

// NewestIn returns the greatest key of m, "" if none (State.NewestHold
// of a map of holds by id).
func NewestIn[V any](m map[string]V) string {
	newest := ""
	for id := range m {
		newest = max(newest, id)
	}
	return newest
}

// DueHoldsIn answers HoldSource.DueHolds from a whole map of holds: its
// HELD holds at their deadlines, as an exact expiry index lists them.
func DueHoldsIn(holds map[string]Hold, t time.Time, max int, dst []Deadline) ([]Deadline, time.Time) {
	all := make([]Deadline, 0, len(holds))
	for id, h := range holds {
		if h.State == Held {
			all = append(all, Deadline{Name: id, At: h.Expires})
		}
	}
	return DueOf(all, t, max, dst)
}

// DueIdemIn answers HoldSource.DueIdem from a whole map of keys.
func DueIdemIn(idem map[string]IdemEntry, t time.Time, max int, dst []Deadline) ([]Deadline, time.Time) {
	all := make([]Deadline, 0, len(idem))
	for k, e := range idem {
		all = append(all, Deadline{Name: k, At: e.Expires})
	}
	return DueOf(all, t, max, dst)
}

// DueOf answers a HoldSource's Due call from a whole index (any order,
// reordered in place): the entries at or before t in (deadline, name)
// order, at most max, appended to dst, and the deadline of the first one
// left out (zero if none). For in-memory sources.
func DueOf(all []Deadline, t time.Time, max int, dst []Deadline) ([]Deadline, time.Time) {
	slices.SortFunc(all, func(a, b Deadline) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	i := 0
	for ; i < len(all) && i < max && !all[i].At.After(t); i++ {
		dst = append(dst, all[i])
	}
	if i < len(all) {
		return dst, all[i].At
	}
	return dst, time.Time{}
}
