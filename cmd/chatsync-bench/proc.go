//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procSample is what /proc tells about one process at one moment.
type procSample struct {
	at      time.Time
	cpu     time.Duration // utime+stime of /proc/PID/stat (10 ms ticks)
	onCPU   time.Duration // sum over threads of /proc/PID/task/*/schedstat (ns)
	ctxsw   int64         // sum over threads of voluntary+nonvoluntary switches
	rss     int64         // VmRSS, bytes
	hwm     int64         // VmHWM (peak RSS), bytes
	anon    int64         // RssAnon: RSS less the mapped files (bbolt's mmap), bytes
	threads int
}

// clkTck is sysconf(_SC_CLK_TCK); it is 100 on every Linux that Go
// supports.
const clkTck = 100

func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.cpu = time.Duration(ut+st) * time.Second / clkTck
	status, err := readStatus(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	s.rss, s.hwm, s.anon = status["VmRSS"]*1024, status["VmHWM"]*1024, status["RssAnon"]*1024
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	s.threads = len(tasks)
	for _, t := range tasks {
		if b, err := os.ReadFile(filepath.Join(t, "schedstat")); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				s.onCPU += time.Duration(ns)
			}
		}
		if ts, err := readStatus(filepath.Join(t, "status")); err == nil {
			s.ctxsw += ts["voluntary_ctxt_switches"] + ts["nonvoluntary_ctxt_switches"]
		}
	}
	return s, nil
}

// readStatus returns the numeric fields of a /proc status file (kB for
// the Vm* fields).
func readStatus(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, sc.Err()
}

// machine describes the host for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return model
}

// loadavg is the first field of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
