package blinktest

import (
	"database/sql"
	"strings"
)

// Dump returns the rows of table matching where (with args), ordered by
// id, every column (id included) as SQLite's quote() shows it: byte-exact
// and typed, so two dumps compare a row as the client would read it.
func Dump(db *sql.DB, table, where string, args ...any) ([]map[string]string, error) {
	var cols []string
	rs, err := db.Query(`SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, err
	}
	for rs.Next() {
		var c string
		if err := rs.Scan(&c); err != nil {
			rs.Close()
			return nil, err
		}
		cols = append(cols, c)
	}
	rs.Close()
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "quote(" + c + ")"
	}
	rs, err = db.Query(`SELECT `+strings.Join(sel, ", ")+` FROM `+table+` WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []map[string]string
	for rs.Next() {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]string, len(cols))
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	return out, rs.Err()
}
