package mariadbtest

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

func TestNewDatabase(t *testing.T) {
	d := New(t)
	db := d.Open(t)
	var user, name string
	if err := db.QueryRow("SELECT CURRENT_USER(), DATABASE()").Scan(&user, &name); err != nil {
		t.Fatal(err)
	}
	if name != d.Name || user != d.User+"@%" {
		t.Errorf("connected as %s to %s, want %s@%% to %s", user, name, d.User, d.Name)
	}
}
