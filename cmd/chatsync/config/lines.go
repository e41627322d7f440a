package config

import "strings"

// lineIndex finds the line of a key in a TOML file. The TOML decoder keeps
// positions to itself, so this reads the file's table headers and key
// assignments directly; it only has to be right for the simple layout a
// config file has ([daemon], [[account]] blocks of key = value lines).
type lineIndex struct {
	keys    map[lineKey]int
	headers map[lineKey]int
}

type lineKey struct {
	table string
	index int
	key   string
}

func newLineIndex(text string) *lineIndex {
	idx := &lineIndex{keys: map[lineKey]int{}, headers: map[lineKey]int{}}
	count := map[string]int{}
	table, index := "", 0
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[["):
			table = strings.TrimSpace(strings.Trim(strings.SplitN(line, "]]", 2)[0], "[ "))
			index = count[table]
			count[table]++
			idx.headers[lineKey{table: table, index: index}] = n + 1
		case strings.HasPrefix(line, "["):
			table = strings.TrimSpace(strings.Trim(strings.SplitN(line, "]", 2)[0], "[ "))
			index = 0
			idx.headers[lineKey{table: table}] = n + 1
		default:
			key, _, found := strings.Cut(line, "=")
			if !found {
				continue
			}
			key = strings.Trim(strings.TrimSpace(key), `"'`)
			k := lineKey{table: table, index: index, key: key}
			if _, seen := idx.keys[k]; !seen {
				idx.keys[k] = n + 1
			}
		}
	}
	return idx
}

// key returns the line of key in the index-th block of table ("" for the
// top level), or the line of a table header named key at the top level, or
// 0 when it cannot tell.
func (l *lineIndex) key(table, key string, index int) int {
	if n, ok := l.keys[lineKey{table: table, index: index, key: key}]; ok {
		return n
	}
	if table == "" {
		return l.headers[lineKey{table: key}]
	}
	return l.header(table, index)
}

// header returns the line of the index-th [table] or [[table]] header.
func (l *lineIndex) header(table string, index int) int {
	return l.headers[lineKey{table: table, index: index}]
}
