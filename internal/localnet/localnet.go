// Package localnet decides where a bearer token may go over plain http: only
// to this machine (the fakes, the emulators and the sandbox), never across a
// network.
package localnet

import (
	"net"
	"net/url"
)

// Host reports whether host (a name or an IP, without a port) names this
// machine.
func Host(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HostPort reports whether hostport (host:port) names this machine.
func HostPort(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && Host(host)
}

// PrivateURL reports whether a bearer token sent to raw stays private: over
// https, or over plain http to this machine.
func PrivateURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "https" || u.Scheme == "http" && Host(u.Hostname())
}
