package engine

import (
	"errors"

	"github.com/chatsync/chatsync/sync/apitype"
)

// Devices returns every chatsync device of the account seen in the
// journal, this one first, with how many of this device's versions each
// had not applied when it last said how far it had.
func (e *Engine) Devices() (apitype.Devices, error) {
	return apitype.Devices{}, errors.New("not yet")
}

// RefreshDevices makes this device send its report now and ask the other
// devices for theirs; they answer at their next poll.
func (e *Engine) RefreshDevices() {}
