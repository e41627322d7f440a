package mariadbtest

import "syscall"

// sysProcAttr makes the server get SIGTERM if the test binary dies
// without calling Stop.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} }
