// Package faultnet is a TCP proxy for fault tests: it stands between a
// process under test and one of its dependencies, so that a test can cut the
// connections at random (an answer lost after the request was served) or all
// at once (the process was killed: nothing it does afterwards reaches
// anyone). It serves loopback addresses only.
package faultnet

import (
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections from its address to a target.
type Proxy struct {
	ln net.Listener
	// Cut, when set, is asked before each chunk of an answer is passed back;
	// true closes the connection instead, as a network failure right after
	// the dependency served the request would.
	cut func() bool

	mu     sync.Mutex
	delay  time.Duration
	target string
	conns  map[net.Conn]bool
	dead   bool
}

// Listen starts a proxy on addr ("127.0.0.1:0" for any port) to target.
// target may be empty until SetTarget: connections are then closed at once.
func Listen(addr, target string, cut func() bool) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, cut: cut, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget sends later connections to target.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

// SetDelay holds each later chunk of an answer for d, as a slow dependency
// would.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// CloseConns closes every open connection, as a crash of the process behind
// (or in front of) the proxy would, and keeps listening.
func (p *Proxy) CloseConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.dead = true
	p.mu.Unlock()
	p.ln.Close()
	p.CloseConns()
}

func (p *Proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(in)
	}
}

// track registers c, or reports false when the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) forward(in net.Conn) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	if target == "" || !p.track(in) {
		in.Close()
		return
	}
	out, err := net.Dial("tcp", target)
	if err != nil || !p.track(out) {
		in.Close()
		if out != nil {
			out.Close()
		}
		return
	}
	closeBoth := func() { in.Close(); out.Close() }
	go func() {
		io.Copy(out, in)
		closeBoth()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := out.Read(buf)
		if n > 0 {
			p.mu.Lock()
			delay := p.delay
			p.mu.Unlock()
			time.Sleep(delay)
			if p.cut != nil && p.cut() {
				closeBoth()
				return
			}
			if _, werr := in.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	closeBoth()
}
