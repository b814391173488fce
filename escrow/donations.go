package escrow

import "time"

// The donation table: what this region answered to each borrow request
// (per asker and request id), so that a copy of a request (a duplicate, a
// retry, a replay minutes late) gets the same answer and does not drain the
// donor twice.
//
// It is bounded, in two generations: answers go into the current one; the
// current one becomes the previous one (and the previous one is forgotten)
// when it holds MaxDonations/2 answers or is donationHorizon old. So the
// table keeps at most MaxDonations answers, every answer for at least
// donationHorizon unless more than MaxDonations/2 requests come within it,
// and memory is that of two maps of MaxDonations/2 entries at most
// (TestMemoryDonationsBounded: about 65 B per entry remembered, flat
// however many requests pass).
//
// Forgetting never lets a copy drain the donor again. A region's borrow
// ids only grow (nextBorrowID: a counter that follows the clock, which a
// restart cannot go behind), so when a generation is forgotten the table
// keeps, per asker, the highest id it forgot (its watermark): a request
// that is not in the table and whose id is at or below the watermark may
// be the copy of a forgotten one, and is answered with nothing. A fresh
// request is always above the watermark, however fast answers are
// forgotten, so the bound never refuses one. This holds at any age of the
// copy, which no layer bounds: the simulator's replay fault delivers
// messages at least a minute old again, picked from 1,024 kept ones that
// are replaced as traffic flows (minutes to tens of minutes old); in a
// region, the transport drops exact copies among the last 4,096 borrow and
// row messages it received (gossip/replay.go), a filter by count, not by
// age. donationHorizon (longer than the replays the simulator makes, most
// of the time) only decides how long a late copy is still answered with
// its amount rather than with nothing; both are safe, since units travel
// in the donor's row, never in the answer.
//
// What is lost with a restart: the table is not persisted, so a copy of a
// request answered before the donor restarted is taken as new. And an asker
// restarted with its clock behind the last id of its previous life (the
// simulator's backward clock jump, then a crash: Result.BorrowIDReuse)
// sends ids it used before: at or below a watermark they are answered with
// nothing until its clock passes it (before, an id still remembered got
// the old answer, nothing new either). Result.DonationCopiesRefused counts
// the requests answered with nothing by either rule.

// donationHorizon: the current generation turns over at least this often.
const donationHorizon = 10 * time.Minute

// maxDonors bounds the askers the table knows by name (their watermarks);
// a request from one more is answered with nothing. Well above any
// cluster's membership.
const maxDonors = 1024

type donationKey struct {
	id   uint64
	from uint32 // index of the asker in donationTable.names
}

type donationTable struct {
	cur, prev map[donationKey]uint64
	curStart  time.Time // when the current generation began (zero: not yet)
	perGen    int       // answers per generation, MaxDonations/2
	names     map[string]uint32
	forgot    []uint64 // per asker index: the highest id forgotten
	forgotten uint64   // answers forgotten (for tests)
	// refused counts requests answered with nothing because they may be
	// copies of forgotten ones (or come from an asker too many).
	refused uint64
}

func newDonationTable(maxAnswers int) donationTable {
	return donationTable{
		cur:    make(map[donationKey]uint64),
		prev:   make(map[donationKey]uint64),
		perGen: max(1, maxAnswers/2),
		names:  make(map[string]uint32),
	}
}

// key returns the key of request id from asker from; ok is false when from
// is one asker too many.
func (t *donationTable) key(from string, id uint64) (k donationKey, ok bool) {
	i, ok := t.names[from]
	if !ok {
		if len(t.names) >= maxDonors {
			return donationKey{}, false
		}
		i = uint32(len(t.names))
		t.names[from] = i
		t.forgot = append(t.forgot, 0)
	}
	return donationKey{id: id, from: i}, true
}

// get returns the answer given to request id of from, and whether it is
// known. A request that is not remembered but may have been forgotten (id
// at or below from's watermark), or from an asker too many, is known, with
// nothing given: it is answered with nothing and not remembered.
func (t *donationTable) get(from string, id uint64) (given uint64, known bool) {
	k, ok := t.key(from, id)
	if !ok {
		t.refused++
		return 0, true
	}
	if g, ok := t.cur[k]; ok {
		return g, true
	}
	if g, ok := t.prev[k]; ok {
		return g, true
	}
	if id <= t.forgot[k.from] {
		t.refused++
		return 0, true
	}
	return 0, false
}

// put remembers the answer given to request id of from, at now.
func (t *donationTable) put(now time.Time, from string, id uint64, given uint64) {
	k, ok := t.key(from, id)
	if !ok {
		return
	}
	if t.curStart.IsZero() {
		t.curStart = now
	}
	if len(t.cur) >= t.perGen || now.Sub(t.curStart) >= donationHorizon {
		t.rotate(now)
	}
	t.cur[k] = given
}

// rotate forgets the previous generation, raising the watermarks to what
// it held, and starts a new current one. The maps are reused: clear keeps
// their buckets, so a steady soak allocates nothing here.
func (t *donationTable) rotate(now time.Time) {
	for k := range t.prev {
		if k.id > t.forgot[k.from] {
			t.forgot[k.from] = k.id
		}
	}
	t.forgotten += uint64(len(t.prev))
	clear(t.prev)
	t.prev, t.cur = t.cur, t.prev
	t.curStart = now
}

// len is the number of answers remembered.
func (t *donationTable) len() int { return len(t.cur) + len(t.prev) }
