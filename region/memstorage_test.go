package region

import (
	"errors"
	"sync"
	"time"

	"github.com/holdfast-io/holdfast/escrow"
)

// memStorage is an in-memory Storage for runtime tests: Apply is atomic,
// failures can be injected, and Load returns exactly what was applied, in
// the store's order (the reference model of the store tests).
type memStorage struct {
	mu    sync.Mutex
	model *stModel

	applies   int
	delay     time.Duration // each Apply takes this long (a slow fsync)
	failApply int           // fail this many Apply calls from now on
	failLoad  int           // fail this many Load calls
}

var errInjected = errors.New("injected storage failure")

func newMemStorage() *memStorage {
	return &memStorage{model: newStModel()}
}

func (m *memStorage) Load() (*escrow.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failLoad > 0 {
		m.failLoad--
		return nil, errInjected
	}
	return m.model.state(), nil
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
	m.model.apply(p)
	return nil
}

// Close keeps the contents: the runtime may reopen by Load.
func (m *memStorage) Close() error { return nil }

func (m *memStorage) hold(id string) (escrow.Hold, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.model.holds[id]
	return h, ok
}

func (m *memStorage) row(sku, region string) escrow.Row {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.model.rows[sku+"\x00"+region].Clone()
}

func (m *memStorage) setFailApply(n int) {
	m.mu.Lock()
	m.failApply = n
	m.mu.Unlock()
}
