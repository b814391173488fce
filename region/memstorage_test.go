package region

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// memStorage is an in-memory Storage for runtime tests: Apply is atomic,
// failures can be injected, and Load returns exactly what was applied.
type memStorage struct {
	mu      sync.Mutex
	rows    map[[2]string]escrow.Row
	holds   map[string]escrow.Hold
	idem    map[string]escrow.IdemEntry
	seq     uint64
	peerSeq map[string]uint64

	applies   int
	delay     time.Duration // each Apply takes this long (a slow fsync)
	failApply int           // fail this many Apply calls from now on
	failLoad  int           // fail this many Load calls
	closed    bool          // informative only: the runtime may reopen by Load
}

var errInjected = errors.New("injected storage failure")

func newMemStorage() *memStorage {
	return &memStorage{rows: map[[2]string]escrow.Row{}, holds: map[string]escrow.Hold{},
		idem: map[string]escrow.IdemEntry{}, peerSeq: map[string]uint64{}}
}

func (m *memStorage) Load() (*escrow.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failLoad > 0 {
		m.failLoad--
		return nil, errInjected
	}
	st := &escrow.State{Seq: m.seq, PeerSeq: map[string]uint64{}}
	for _, r := range m.rows {
		st.Rows = append(st.Rows, r.Clone())
	}
	sort.Slice(st.Rows, func(i, j int) bool {
		if st.Rows[i].SKU != st.Rows[j].SKU {
			return st.Rows[i].SKU < st.Rows[j].SKU
		}
		return st.Rows[i].Region < st.Rows[j].Region
	})
	for _, h := range m.holds {
		st.Holds = append(st.Holds, h.Clone())
	}
	sort.Slice(st.Holds, func(i, j int) bool { return st.Holds[i].ID < st.Holds[j].ID })
	for _, e := range m.idem {
		st.Idem = append(st.Idem, e)
	}
	for r, s := range m.peerSeq {
		st.PeerSeq[r] = s
	}
	return st, nil
}

func (m *memStorage) Apply(p *escrow.Persist) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failApply > 0 {
		m.failApply--
		return errInjected
	}
	m.applies++
	if m.delay > 0 {
		time.Sleep(m.delay) // stands for the fsync, not a synchronisation
	}
	for _, r := range p.Rows {
		m.rows[[2]string{r.SKU, r.Region}] = r.Clone()
	}
	for _, h := range p.Holds {
		m.holds[h.ID] = h.Clone()
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
	m.seq = p.Seq
	for r, s := range p.PeerSeq {
		m.peerSeq[r] = s
	}
	return nil
}

func (m *memStorage) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

func (m *memStorage) hold(id string) (escrow.Hold, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.holds[id]
	return h, ok
}

func (m *memStorage) row(sku, region string) escrow.Row {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rows[[2]string{sku, region}].Clone()
}

func (m *memStorage) setFailApply(n int) {
	m.mu.Lock()
	m.failApply = n
	m.mu.Unlock()
}
