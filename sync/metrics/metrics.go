// Package metrics serves the daemon's state in the Prometheus text format,
// for GET /v1/metrics on the control socket and daemon.metrics_listen.
package metrics

import (
	"net/http"

	"github.com/chatsync/chatsync/sync/apitype"
)

// Source is what the metrics are read from, at every scrape.
type Source interface {
	// Status is the daemon's status, as GET /v1/status serves it.
	Status() apitype.Status
	// Devices is every account's chatsync devices, as GET /v1/devices
	// serves them.
	Devices() []apitype.Devices
}

// Handler serves src's metrics in the Prometheus text format.
func Handler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "metrics are not implemented yet", http.StatusNotImplemented)
	})
}
