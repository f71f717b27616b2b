package config

import (
	"testing"
)

// The rule keys of targeted cache control (RFC 9213) and of the client's
// request directives (RFC 9111 §5.2.1): their defaults, accepted values
// and the message for each wrong one.
func TestDirectiveKeys(t *testing.T) {
	type got struct {
		targeted string
		forward  bool
		honor    bool
	}
	for _, tc := range []struct {
		name  string
		lines string // added under rules[0]
		want  got
		err   string // the whole error when the file is refused
	}{
		{"defaults", "", got{targeted: "Sliceedge-Cache-Control"}, ""},
		{"a field of one's own, canonical", "    targeted_cache_control: x-acme-ttl\n", got{targeted: "X-Acme-Ttl"}, ""},
		{"CDN-Cache-Control alone", "    targeted_cache_control: CDN-Cache-Control\n", got{targeted: "Cdn-Cache-Control"}, ""},
		{"forward", "    forward_targeted_cache_control: true\n", got{targeted: "Sliceedge-Cache-Control", forward: true}, ""},
		{"honor", "    client_cache_control: honor\n", got{targeted: "Sliceedge-Cache-Control", honor: true}, ""},
		{"ignore", "    client_cache_control: ignore\n", got{targeted: "Sliceedge-Cache-Control"}, ""},
		{"Cache-Control is not targeted", "    targeted_cache_control: cache-control\n", got{},
			`t.yaml:12: rules[0].targeted_cache_control: Cache-Control is the field every cache reads, not a targeted one (want a response header field name such as Sliceedge-Cache-Control; CDN-Cache-Control is followed in any case)`},
		{"a space is not a field name", "    targeted_cache_control: My Cache\n", got{},
			`t.yaml:12: rules[0].targeted_cache_control: "My Cache" is not a header field name (want a response header field name such as Sliceedge-Cache-Control: letters, digits and !#$%&'*+-.^_` + "`" + `|~)`},
		{"a colon is not a field name", "    targeted_cache_control: \"X-A:\"\n", got{},
			`t.yaml:12: rules[0].targeted_cache_control: "X-A:" is not a header field name (want a response header field name such as Sliceedge-Cache-Control: letters, digits and !#$%&'*+-.^_` + "`" + `|~)`},
		{"empty", "    targeted_cache_control: \"\"\n", got{},
			`t.yaml:12: rules[0].targeted_cache_control: empty (want a response header field name such as Sliceedge-Cache-Control)`},
		{"a list", "    targeted_cache_control: [A, B]\n", got{},
			`t.yaml:12: rules[0].targeted_cache_control: want a header field name, got a list`},
		{"forward is a boolean", "    forward_targeted_cache_control: yes please\n", got{},
			`t.yaml:12: rules[0].forward_targeted_cache_control: "yes please" is not a boolean (want true or false)`},
		{"unknown mode", "    client_cache_control: obey\n", got{},
			`t.yaml:12: rules[0].client_cache_control: unknown mode "obey" (want honor or ignore)`},
		{"mode is case-sensitive like the others", "    client_cache_control: Honor\n", got{},
			`t.yaml:12: rules[0].client_cache_control: unknown mode "Honor" (want honor or ignore)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := with(t, "    origin: default\n", "    origin: default\n"+tc.lines)
			c, err := Parse("t.yaml", data)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("%q: error %v\nwant %s", tc.lines, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v", tc.lines, err)
			}
			r := c.Rules[0]
			if g := (got{r.TargetedCacheControl, r.ForwardTargetedCacheControl, r.HonorClientCacheControl}); g != tc.want {
				t.Errorf("%q: %+v, want %+v", tc.lines, g, tc.want)
			}
		})
	}
}
