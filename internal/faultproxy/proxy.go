// Package faultproxy is a TCP proxy that can cut and heal a link. Tests put
// one between a process and its NATS server (or between two servers) to
// make a partition on demand, and the demo uses it to cut a region off; it
// is internal to holdfast and is not part of the region runtime.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is a fault-injecting TCP proxy: put one between a region and its
// NATS server and Cut it to partition the region off, Heal to reconnect.
// It forwards bytes unchanged; it knows nothing about NATS.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	closed  bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	maxConn int
}

// New listens on listenAddr (e.g. "127.0.0.1:0") and forwards every
// connection to target.
func New(listenAddr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen %s: %w", listenAddr, err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{}), maxConn: 1024}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients should dial ("host:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns Addr as a NATS URL.
func (p *Proxy) URL() string { return "nats://" + p.Addr() }

// Cut drops every open connection and refuses new ones (accepted, then
// closed at once) until Heal: the clients behind the proxy see the link
// drop and retry, as across a real partition.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = make(map[net.Conn]struct{})
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// Heal lets connections through again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// IsCut reports whether the proxy is cut.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	err := p.ln.Close()
	for c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // transient accept error (EMFILE): back off, do not spin
			continue
		}
		p.mu.Lock()
		refuse := p.cut || p.closed || len(p.conns) >= 2*p.maxConn
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	// Registered only now: a Cut that ran during the dial is seen here.
	if !p.track(client, upstream) {
		_ = client.Close()
		_ = upstream.Close()
		return
	}
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		// One direction ended: end both, so the peer sees the drop.
		_ = dst.Close()
		_ = src.Close()
	}
	wg.Add(2)
	go pipe(upstream, client)
	go pipe(client, upstream)
	wg.Wait()
	p.untrack(client, upstream)
}
