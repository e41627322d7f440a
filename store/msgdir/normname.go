//go:build !darwin

package msgdir

import "golang.org/x/text/unicode/norm"

// stableName reports whether a name is in the form the file system gives
// back: here names are bytes, kept as written, and chatsync writes NFC.
func stableName(s string) bool { return norm.NFC.IsNormalString(s) }
