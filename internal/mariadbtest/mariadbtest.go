// Package mariadbtest starts a real MariaDB server for tests: one server
// per test binary (started on first use, stopped by Stop from TestMain),
// one database and user per test.
//
// If no MariaDB is installed the tests skip, saying how to install it,
// unless CHATSYNC_REQUIRE_MARIADB=1 (set by .ci/run), where they fail.
package mariadbtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// InstallCommand is what installs the server on Debian (and in .ci/run).
const InstallCommand = "apt-get install -y --no-install-recommends mariadb-server"

// DB is one test's database on the shared server.
type DB struct {
	Host     string // 127.0.0.1
	Port     int
	Name     string // database
	User     string
	Password string
}

// Addr is host:port.
func (d DB) Addr() string { return net.JoinHostPort(d.Host, fmt.Sprint(d.Port)) }

// Config is a driver configuration for the test's user and database.
func (d DB) Config() *mysql.Config {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = d.User, d.Password, "tcp", d.Addr(), d.Name
	return c
}

// Open opens the test's database as its user; the pool is closed at the
// end of the test.
func (d DB) Open(t testing.TB) *sql.DB {
	t.Helper()
	c := d.Config()
	c.MultiStatements = true
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	root *sql.DB
	err  error
}

var (
	once   sync.Once
	shared *server
	mu     sync.Mutex
	n      int
)

func binary(names ...string) string {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := filepath.Join("/usr/sbin", name); isExec(p) {
			return p
		}
		if p := filepath.Join("/usr/bin", name); isExec(p) {
			return p
		}
	}
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}

// New returns a fresh database with its own user and password on the
// shared server, starting the server on first use.
func New(t testing.TB) DB {
	t.Helper()
	once.Do(func() { shared = start() })
	if shared.err != nil {
		if errors.Is(shared.err, errNotInstalled) && os.Getenv("CHATSYNC_REQUIRE_MARIADB") != "1" {
			t.Skipf("MariaDB is not installed (%s); install it with: %s", shared.err, InstallCommand)
		}
		t.Fatalf("mariadbtest: %v", shared.err)
	}
	mu.Lock()
	n++
	i := n
	mu.Unlock()
	d := DB{Host: "127.0.0.1", Port: shared.port, Name: fmt.Sprintf("t%d", i), User: fmt.Sprintf("u%d", i), Password: randHex()}
	for _, q := range []string{
		"CREATE DATABASE " + d.Name,
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", d.User, d.Password),
		fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", d.Name, d.User),
	} {
		if _, err := shared.root.Exec(q); err != nil {
			t.Fatalf("mariadbtest: %s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		shared.root.Exec("DROP DATABASE IF EXISTS " + d.Name)
		shared.root.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", d.User))
	})
	return d
}

// Stop stops the shared server if it was started. Call it from TestMain
// after m.Run.
func Stop() {
	if shared == nil || shared.cmd == nil {
		return
	}
	shared.root.Close()
	shared.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-shared.done:
	case <-time.After(30 * time.Second):
		shared.cmd.Process.Kill()
		<-shared.done
	}
	os.RemoveAll(shared.dir)
}

var errNotInstalled = errors.New("no mariadbd or mysqld on PATH or in /usr/sbin")

func randHex() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start() *server {
	s := &server{}
	bin := binary("mariadbd", "mysqld")
	install := binary("mariadb-install-db", "mysql_install_db")
	if bin == "" || install == "" {
		s.err = errNotInstalled
		return s
	}
	dir, err := os.MkdirTemp("", "mariadbtest-")
	if err != nil {
		s.err = err
		return s
	}
	s.dir = dir
	data := filepath.Join(dir, "data")
	user := "root"
	if os.Geteuid() != 0 {
		user = os.Getenv("USER")
	}
	out, err := exec.Command(install, "--no-defaults", "--datadir="+data, "--auth-root-authentication-method=normal",
		"--user="+user, "--skip-test-db").CombinedOutput()
	if err != nil {
		s.err = fmt.Errorf("%s: %v\n%s", install, err, out)
		return s
	}
	rootPW := randHex()
	for attempt := 0; attempt < 3; attempt++ {
		s.port, err = freePort()
		if err != nil {
			s.err = err
			return s
		}
		log, _ := os.Create(filepath.Join(dir, "mariadbd.log"))
		s.cmd = exec.Command(bin, "--no-defaults", "--datadir="+data, "--socket="+filepath.Join(dir, "s.sock"),
			fmt.Sprintf("--port=%d", s.port), "--bind-address=127.0.0.1", "--user="+user,
			"--pid-file="+filepath.Join(dir, "mariadbd.pid"), "--skip-log-bin",
			"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=2",
			"--max-connections=500", "--log-error="+filepath.Join(dir, "mariadbd.err"))
		s.cmd.Stdout, s.cmd.Stderr = log, log
		s.cmd.SysProcAttr = sysProcAttr()
		if err := s.cmd.Start(); err != nil {
			s.err = err
			return s
		}
		s.done = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
		// The root user has no password yet and may log in over the
		// socket.
		c := mysql.NewConfig()
		c.User, c.Net, c.Addr = "root", "unix", filepath.Join(dir, "s.sock")
		root, _ := sql.Open("mysql", c.FormatDSN())
		deadline := time.Now().Add(60 * time.Second)
		for {
			if err = root.Ping(); err == nil {
				break
			}
			select {
			case <-s.done:
				err = fmt.Errorf("mariadbd exited: %s", tail(filepath.Join(dir, "mariadbd.err")))
			case <-time.After(100 * time.Millisecond):
				if time.Now().After(deadline) {
					err = fmt.Errorf("mariadbd does not answer: %v: %s", err, tail(filepath.Join(dir, "mariadbd.err")))
				} else {
					continue
				}
			}
			break
		}
		if err != nil {
			root.Close()
			s.cmd.Process.Kill()
			<-s.done
			if strings.Contains(err.Error(), "Address already in use") {
				continue // the free port was taken meanwhile
			}
			s.err = err
			return s
		}
		// Give root a password, so that no other local user gets in
		// over TCP, and go on with a pool that uses it.
		_, err = root.Exec(fmt.Sprintf("ALTER USER 'root'@'localhost' IDENTIFIED BY '%s'", rootPW))
		root.Close()
		if err != nil {
			s.err = err
			return s
		}
		c.Passwd = rootPW
		root, _ = sql.Open("mysql", c.FormatDSN())
		root.SetMaxOpenConns(4)
		s.root = root
		return s
	}
	s.err = fmt.Errorf("mariadbd: no free port: %v", err)
	return s
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
