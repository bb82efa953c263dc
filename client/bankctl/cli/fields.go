package cli

import (
	"regexp"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// flagFor returns the flag of the running command that sets the request field path (a
// proto field path such as "from_account_id" or "amount.currency_code"), or "" when no
// flag does. Flags are the request fields in kebab case; a Money field is typed as
// --amount and its currency as --currency.
func (a *app) flagFor(path string) string {
	if a.cmd == nil {
		return ""
	}
	name := path
	switch {
	case path == "amount.currency_code":
		name = "currency"
	case strings.HasPrefix(path, "amount."):
		name = "amount"
	}
	name = strings.ReplaceAll(name, "_", "-")
	if strings.ContainsAny(name, ".[") || a.cmd.Flags().Lookup(name) == nil {
		return ""
	}
	return "--" + name
}

// fieldPathRE finds proto field paths in a status message: snake_case words, possibly
// dotted ("amount.minor_units").
var fieldPathRE = regexp.MustCompile(`\b[a-z][a-z0-9]*(?:_[a-z0-9]+)*(?:\.[a-z][a-z0-9]*(?:_[a-z0-9]+)*)*\b`)

// invalidArgumentText says what a server's InvalidArgument blames, in bankctl's terms:
// each BadRequest field violation as "--flag: description", or else the message with the
// request fields it names replaced by their flags. flagFor maps a field path to its flag
// ("" for none); it may be nil. The text between double quotes is the user's own input and
// is left as it is.
func invalidArgumentText(st *status.Status, flagFor func(string) string) string {
	if flagFor == nil {
		flagFor = func(string) string { return "" }
	}
	var parts []string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			field := v.GetField()
			if flag := flagFor(field); flag != "" {
				field = flag
			}
			parts = append(parts, field+": "+stripField(v.GetDescription(), v.GetField()))
		}
	}
	if len(parts) > 0 {
		return strings.Join(parts, "; ")
	}
	return renameFields(st.Message(), flagFor)
}

// stripField drops a leading "field: " a description may repeat.
func stripField(desc, field string) string {
	return strings.TrimPrefix(desc, field+": ")
}

// renameFields replaces, outside double quotes, the field paths of msg that have a flag:
// any snake_case or dotted path, and a plain word only at the very start ("memo must ...").
func renameFields(msg string, flagFor func(string) string) string {
	segs := strings.Split(msg, `"`)
	for i := 0; i < len(segs); i += 2 {
		segs[i] = fieldPathRE.ReplaceAllStringFunc(segs[i], func(w string) string {
			if !strings.ContainsAny(w, "_.") {
				return w
			}
			if flag := flagFor(w); flag != "" {
				return flag
			}
			return w
		})
	}
	out := strings.Join(segs, `"`)
	if w := fieldPathRE.FindString(out); w != "" && strings.HasPrefix(out, w) && !strings.ContainsAny(w, "_.") {
		if flag := flagFor(w); flag != "" {
			out = flag + out[len(w):]
		}
	}
	return out
}
