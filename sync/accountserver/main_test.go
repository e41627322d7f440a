package accountserver

import (
	"os"
	"testing"

	"github.com/chatsync/chatsync/internal/mariadbtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mariadbtest.Stop()
	os.Exit(code)
}
