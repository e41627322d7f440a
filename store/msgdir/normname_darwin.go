package msgdir

import "golang.org/x/text/unicode/norm"

// stableName reports whether a name reads the same composed and
// decomposed: HFS+ stores every name decomposed (NFD), so a composed name
// written there would come back as another string.
func stableName(s string) bool { return norm.NFC.IsNormalString(s) && norm.NFD.IsNormalString(s) }
