// Package configs_test checks that the sample configurations in this
// directory are accepted by the programs that read them, and that the
// production NATS sample really restricts each region to its own subjects.
package configs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/gossip"
	"github.com/holdfast-io/holdfast/internal/testutil"
	"github.com/holdfast-io/holdfast/internal/testutil/testapi"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func setNATSPasswords(t *testing.T) {
	for _, v := range []string{"EU", "US", "AP", "REBALANCER", "EVENTS", "OPS", "SYS"} {
		t.Setenv("HOLDFAST_NATS_"+v+"_PASSWORD", "pw-"+v)
	}
}

func TestNATSConfigsParse(t *testing.T) {
	setNATSPasswords(t)
	conf, _ := superclusterConf(t)
	for _, f := range []string{"local/nats.conf", conf} {
		opts, err := server.ProcessConfigFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if opts.MaxPayload < 1<<20 {
			t.Errorf("%s: max_payload %d is below holdfast's 1 MiB message bound", f, opts.MaxPayload)
		}
		if f == conf && (!opts.JetStream || opts.StoreDir == "") {
			t.Errorf("%s: JetStream is not enabled with a store dir (the events stream needs it)", f)
		}
	}
}

// startSupercluster starts one server with the accounts and permissions of
// nats-supercluster.conf, on loopback and without routes or gateways.
func startSupercluster(t *testing.T) *server.Server {
	t.Helper()
	setNATSPasswords(t)
	conf, _ := superclusterConf(t)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// TLS is checked by TestSuperclusterTLS; these tests look at
	// permissions over plain loopback connections.
	opts.TLSConfig, opts.TLS, opts.TLSVerify = nil, false, false
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPPort = 0
	opts.Cluster = server.ClusterOpts{}
	opts.Gateway = server.GatewayOpts{}
	opts.Routes = nil
	opts.StoreDir = t.TempDir() // JetStream (the events stream) on the test's disk
	return testutil.NATSWithOptions(t, opts)
}

func connect(t *testing.T, s *server.Server, user string, errs chan<- error, extra ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), append([]nats.Option{nats.UserInfo(user, "pw-"+map[string]string{
		"region-eu": "EU", "region-us": "US", "region-ap": "AP", "rebalancer": "REBALANCER", "events": "EVENTS",
		"ops": "OPS",
	}[user]), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errs != nil {
			select {
			case errs <- err:
			default:
			}
		}
	})}, extra...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestSuperclusterPermissions: a region's user may publish only its own
// subjects. The forbidden message is published before the allowed one on the
// same connection, so if the allowed one arrives and the forbidden one did
// not arrive before it, the server dropped it.
func TestSuperclusterPermissions(t *testing.T) {
	s := startSupercluster(t)
	us := connect(t, s, "region-us", nil)
	var subs []*nats.Subscription
	for _, subj := range []string{"holdfast.prod.rows.*", "holdfast.prod.borrow.us.*", "holdfast.prod.advice"} {
		sub, err := us.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if err := us.Flush(); err != nil {
		t.Fatal(err)
	}

	euErrs := make(chan error, 16)
	eu := connect(t, s, "region-eu", euErrs)
	cases := []struct {
		forbidden, allowed string
		sub                int
	}{
		{"holdfast.prod.rows.us", "holdfast.prod.rows.eu", 0},           // forge another region's rows
		{"holdfast.prod.borrow.us.ap", "holdfast.prod.borrow.us.eu", 1}, // pretend to be ap
		{"holdfast.prod.advice", "holdfast.prod.borrow.us.eu", 2},       // regions do not advise
	}
	for _, c := range cases {
		if err := eu.Publish(c.forbidden, []byte("forged")); err != nil {
			t.Fatal(err)
		}
		if err := eu.Publish(c.allowed, []byte("ok")); err != nil {
			t.Fatal(err)
		}
		if err := eu.Flush(); err != nil {
			t.Fatal(err)
		}
		if c.sub == 2 {
			// advice: nothing may arrive at all; the permission error says so.
			select {
			case err := <-euErrs:
				if !errors.Is(err, nats.ErrPermissionViolation) {
					t.Errorf("publish %s: got error %v, want a permission violation", c.forbidden, err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("publish %s by region-eu: no permission violation reported", c.forbidden)
			}
			continue
		}
		m, err := subs[c.sub].NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("allowed publish %s: %v", c.allowed, err)
		}
		if m.Subject != c.allowed {
			t.Errorf("region-eu published %s and it was delivered: permissions do not restrict it", m.Subject)
		}
		select {
		case err := <-euErrs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("publish %s: got error %v, want a permission violation", c.forbidden, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("publish %s by region-eu: no permission violation reported", c.forbidden)
		}
	}

	// Subscribing to another region's directed messages is refused.
	if _, err := eu.SubscribeSync("holdfast.prod.borrow.us.*"); err != nil {
		t.Fatal(err)
	}
	eu.Flush()
	select {
	case err := <-euErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("subscribe borrow.us.*: got %v, want a permission violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("region-eu could subscribe to holdfast.prod.borrow.us.*")
	}
}

// TestSuperclusterForwarding: a forwarded hold operation (request/reply on
// hold.<owner>) works with the sample permissions: the requester subscribes
// to its inbox, the owner answers through allow_responses.
func TestSuperclusterForwarding(t *testing.T) {
	s := startSupercluster(t)
	owner := connect(t, s, "region-us", nil)
	if _, err := owner.Subscribe("holdfast.prod.hold.us", func(m *nats.Msg) { m.Respond([]byte("answer")) }); err != nil {
		t.Fatal(err)
	}
	owner.Flush()
	eu := connect(t, s, "region-eu", nil, nats.CustomInboxPrefix(gossip.DefaultInboxPrefix("prod", "eu")))
	m, err := eu.Request("holdfast.prod.hold.us", []byte("confirm"), 5*time.Second)
	if err != nil {
		t.Fatalf("forwarded request from eu to us: %v", err)
	}
	if string(m.Data) != "answer" {
		t.Fatalf("got %q", m.Data)
	}
	// The rebalancer reads digests and publishes advice.
	reb := connect(t, s, "rebalancer", nil)
	sub, err := reb.SubscribeSync("holdfast.prod.digest.*")
	if err != nil {
		t.Fatal(err)
	}
	reb.Flush()
	if err := eu.Publish("holdfast.prod.digest.eu", []byte("d")); err != nil {
		t.Fatal(err)
	}
	eu.Flush()
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("rebalancer did not get eu's digest: %v", err)
	}
}

// TestLocalNATSConfigRuns: "holdfast nats --config configs/local/nats.conf"
// starts (on a free loopback port here).
func TestLocalNATSConfigRuns(t *testing.T) {
	opts, err := server.ProcessConfigFile("local/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Host != "127.0.0.1" || opts.Port != 4222 {
		t.Errorf("listen %s:%d, want 127.0.0.1:4222 (configs/local/*.yaml use it)", opts.Host, opts.Port)
	}
	_, url := testapi.NATSFromConfig(t, "local/nats.conf")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// TestSuperclusterInboxes: each region has its own inbox prefix. Region eu
// may not subscribe to us's inbox (nor to all inboxes), so it cannot read
// the answers to us's forwarded operations; us's request still gets its
// answer.
func TestSuperclusterInboxes(t *testing.T) {
	s := startSupercluster(t)
	euErrs := make(chan error, 16)
	eu := connect(t, s, "region-eu", euErrs, nats.CustomInboxPrefix(gossip.DefaultInboxPrefix("prod", "eu")))
	for _, subj := range []string{gossip.DefaultInboxPrefix("prod", "us") + ".>", "_INBOX.>"} {
		if _, err := eu.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		if err := eu.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-euErrs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("subscribe %s: got %v, want a permission violation", subj, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("region-eu could subscribe to %s", subj)
		}
	}
	ap := connect(t, s, "region-ap", nil)
	if _, err := ap.Subscribe("holdfast.prod.hold.ap", func(m *nats.Msg) { m.Respond([]byte("secret answer")) }); err != nil {
		t.Fatal(err)
	}
	ap.Flush()
	us := connect(t, s, "region-us", nil, nats.CustomInboxPrefix(gossip.DefaultInboxPrefix("prod", "us")))
	m, err := us.Request("holdfast.prod.hold.ap", []byte("get"), 5*time.Second)
	if err != nil || string(m.Data) != "secret answer" {
		t.Fatalf("us's request to ap: %v", err)
	}
	// With nats.go's shared default prefix, us's request cannot even be
	// answered: its user may subscribe to its own prefix only.
	plain := connect(t, s, "region-us", nil)
	if _, err := plain.Request("holdfast.prod.hold.ap", []byte("get"), time.Second); err == nil {
		t.Fatal("region-us received an answer on the shared _INBOX prefix")
	}
}
