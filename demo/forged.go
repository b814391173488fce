package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/escrow"
	"github.com/holdfast-io/holdfast/gossip"
)

// demoKeys gives every region of the demo a signing key (as `holdfast
// keys` would) and returns the membership's public keys: the demo's
// cluster runs signed.
func demoKeys(dir string, names []string) (seedFiles, pubs map[string]string, err error) {
	seedFiles, pubs = map[string]string{}, map[string]string{}
	for _, name := range names {
		path := dir + "/" + name + ".nk"
		pub, err := gossip.WriteSeedFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("demo: signing key of %s: %w", name, err)
		}
		seedFiles[name], pubs[name] = path, pub
	}
	return seedFiles, pubs, nil
}

// forge plays an attacker with a plain NATS client (no credentials, no
// keys): rows that would mint 1000 units of sku as the first region, sent
// to everyone. Every other region must drop them for their signature; the
// checks after it find no unit of them anywhere.
func (r *run) forge(ctx context.Context, sku string) Check {
	c := Check{Name: "forged messages dropped"}
	sites := r.env.sites
	victim := sites[0].name
	before := map[string]float64{}
	for _, s := range sites {
		before[s.name] = s.tr.RejectedCount("signature")
	}
	nc, err := nats.Connect(r.env.natsURL)
	if err != nil {
		c.Detail = "cannot connect the forger: " + err.Error()
		return c
	}
	defer nc.Close()
	m := escrow.Message{Type: escrow.MsgRows, From: victim, Seq: 1 << 30, PrevSeq: 1<<30 - 1,
		Rows: []escrow.Row{{SKU: sku, Region: victim, Seq: 1 << 30, Minted: 1000}}}
	data, err := escrow.EncodeMessage(nil, &m)
	if err == nil {
		err = nc.Publish(gossip.RowsSubject(cluster, victim), data)
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		c.Detail = "cannot publish: " + err.Error()
		return c
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range sites[1:] {
		for s.tr.RejectedCount("signature") <= before[s.name] {
			if time.Now().After(deadline) || ctx.Err() != nil {
				c.Detail = fmt.Sprintf("%s did not reject the forged rows of %s", s.name, victim)
				return c
			}
			time.Sleep(10 * time.Millisecond) // polling a counter, with a deadline
		}
	}
	c.OK = true
	c.Detail = fmt.Sprintf("rows minting 1000 units of %s as %s, from a client without keys: dropped by all %d peers (signature)", sku, victim, len(sites)-1)
	return c
}
