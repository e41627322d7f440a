//go:build benchpprof

package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

// Compiled only with -tags benchpprof (cmd/chatsync-bench -pprof): when
// CHATSYNC_PPROF=ADDR is set, the daemon serves net/http/pprof on ADDR so
// the benchmark can take CPU and heap profiles of the real process. Release
// builds never contain it.
func init() {
	addr := os.Getenv("CHATSYNC_PPROF")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chatsync: pprof: %v\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "chatsync: pprof on http://%s/debug/pprof/\n", ln.Addr())
	go http.Serve(ln, nil) //nolint:errcheck // lives as long as the process
}
