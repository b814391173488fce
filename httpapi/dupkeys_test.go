package httpapi

import "testing"

func TestDuplicateKey(t *testing.T) {
	for body, want := range map[string]string{
		`{"items":[{"sku":"A","qty":1}],"ttl":"5m"}`:                    "",
		`{"items":[{"sku":"A","qty":1}],"ttl":"5m","ttl":"1h"}`:         "ttl",
		`{"items":[{"sku":"A","qty":1,"qty":9}]}`:                       "items[0].qty",
		`{"items":[{"sku":"A","qty":1},{"sku":"B","sku":"C","qty":1}]}`: "items[1].sku",
		`{"metadata":{"a":1,"b":{"c":[1,{"d":2,"d":3}]}}}`:              "metadata.b.c[1].d",
		`{"a":{"x":1},"b":{"x":1}}`:                                     "",
		`{"a":[{"x":1},{"x":1}]}`:                                       "",
		`{"a":1,"a"`:                                                    "a",
		`not json`:                                                      "",
		`[1,2,{"k":1,"k":2}]`:                                           "[2].k",
		`{"\u0074tl":"5m","ttl":"1h"}`:                                  "ttl",
	} {
		if got := duplicateKey([]byte(body)); got != want {
			t.Errorf("duplicateKey(%s) = %q, want %q", body, got, want)
		}
	}
}
