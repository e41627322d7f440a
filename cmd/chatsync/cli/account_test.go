package cli

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/chatsync/chatsync/sync/apitype"
)

func TestVoicemailOptionsForPeople(t *testing.T) {
	for raw, want := range map[string]string{
		``:                                 "",
		`{"delete":false}`:                 "delete=false",
		`{"keep":"30 days","delete":true}`: "delete=true keep=30 days",
		`{"n":{"x":1},"l":[1,2],"z":null}`: `l=[1,2] n={"x":1} z=null`,
		`"attach=yes"`:                     "attach=yes",
		`{}`:                               "",
		`[1]`:                              "[1]",
	} {
		if got := voicemailOptions(json.RawMessage(raw)); got != want {
			t.Errorf("voicemailOptions(%s) = %q, want %q", raw, got, want)
		}
	}
	vm := &apitype.Voicemail{Mailbox: "1001", Account: "1001@vm.example.com", Options: json.RawMessage(`{"delete":false}`)}
	var b bytes.Buffer
	if err := printVoicemail(&b, &vm); err != nil {
		t.Fatal(err)
	}
	want := "mailbox   1001\naccount   1001@vm.example.com\nname      -\nemail     -\noptions   delete=false\npassword  (hidden: --json shows it)\n"
	if b.String() != want {
		t.Errorf("printVoicemail:\n%s\nwant\n%s", b.String(), want)
	}
}
