package daemon

// The account's chatsync devices and the verify of its store against the
// journal: the engine does the work; the daemon finds the engine of the
// account asked for and says why when there is none.

import (
	"context"
	"fmt"

	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/localapi"
)

// engineRunner returns the running account named addr ("" for the only
// one), with errors that wrap localapi's ErrNoAccount, ErrAccountRequired
// and ErrNotRunning.
func (d *Daemon) engineRunner(addr string) (*accountRunner, error) {
	r, err := backend{d}.runner(addr)
	if err != nil {
		return nil, err
	}
	if r.eng == nil {
		return nil, fmt.Errorf("%w: %s: %v", localapi.ErrNotRunning, r.cfg.Address, r.err)
	}
	return r, nil
}

// runners returns the accounts' runners in config order.
func (d *Daemon) runners() []*accountRunner {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*accountRunner
	for _, a := range d.opts.Config.Accounts {
		if r := d.accounts[a.Address]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// Devices returns the chatsync devices of the account addr, or for "" of
// every account that runs. With one account in the config, "" is that
// account, and an error when it does not run; with several, the accounts
// that do not run are left out (status says why).
func (d *Daemon) Devices(addr string) ([]apitype.Devices, error) {
	var runners []*accountRunner
	if all := d.runners(); addr != "" || len(all) == 1 {
		r, err := d.engineRunner(addr)
		if err != nil {
			return nil, err
		}
		runners = []*accountRunner{r}
	} else {
		for _, r := range all {
			if r.eng != nil {
				runners = append(runners, r)
			}
		}
	}
	out := []apitype.Devices{}
	for _, r := range runners {
		devs, err := r.eng.Devices()
		if err != nil {
			return nil, fmt.Errorf("devices of %s: %w", r.cfg.Address, err)
		}
		out = append(out, cleanDevices(devs, r.cfg.Address))
	}
	return out, nil
}

// cleanDevices fills what the JSON of SPEC §8b promises: the account, and
// lists that are [] rather than null.
func cleanDevices(devs apitype.Devices, addr string) apitype.Devices {
	if devs.Account == "" {
		devs.Account = addr
	}
	if devs.Devices == nil {
		devs.Devices = []apitype.SyncDevice{}
	}
	for i := range devs.Devices {
		if devs.Devices[i].KeyIDs == nil {
			devs.Devices[i].KeyIDs = []string{}
		}
	}
	return devs
}

// RefreshDevices makes the account addr (every running account for "")
// send its report now and ask its other devices for theirs, which they
// send at their next poll.
func (d *Daemon) RefreshDevices(addr string) error {
	all := d.runners()
	if addr != "" || len(all) == 1 {
		r, err := d.engineRunner(addr)
		if err != nil {
			return err
		}
		r.eng.RefreshDevices()
		return nil
	}
	n := 0
	for _, r := range all {
		if r.eng != nil {
			r.eng.RefreshDevices()
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: no account runs: see `chatsync status`", localapi.ErrNotRunning)
	}
	return nil
}

// Verify compares the store of the account addr ("" for the only one)
// with the journal, and with repair fixes what differs. It reads the
// whole journal, so it may take minutes; ctx ends it.
func (d *Daemon) Verify(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error) {
	r, err := d.engineRunner(addr)
	if err != nil {
		return apitype.VerifyResult{}, err
	}
	res, err := r.eng.Verify(ctx, repair, progress)
	if err != nil {
		return apitype.VerifyResult{}, fmt.Errorf("verify %s: %w", r.cfg.Address, err)
	}
	if res.Account == "" {
		res.Account = r.cfg.Address
	}
	if res.Examples == nil {
		res.Examples = []apitype.VerifyExample{}
	}
	return res, nil
}
