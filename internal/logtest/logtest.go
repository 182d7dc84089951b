// Package logtest is what tests need to read the logs they make.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer collects what many goroutines write (a service's log lines, a
// program's output) and lets a test read it while they still write.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
