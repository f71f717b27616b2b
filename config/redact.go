package config

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// secretKeys are the keys whose values Redacted hides: admin.token and
// cluster.secret.
var secretKeys = map[string]bool{"token": true, "secret": true}

// Redacted is the configuration's text with the values of secret keys
// replaced by "<redacted>", comments and order kept: what the admin API
// shows as the configuration in force.
func (c *Config) Redacted() ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(c.Text, &root); err != nil {
		return nil, fmt.Errorf("config: redact %s: %w", c.Source, err)
	}
	redact(&root)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("config: redact %s: %w", c.Source, err)
	}
	return b.Bytes(), nil
}

func redact(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !secretKeys[k.Value] {
				continue
			}
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias // the anchored value is the secret, wherever it sits
			}
			if v.Kind == yaml.ScalarNode {
				v.Value, v.Tag, v.Style = "<redacted>", "!!str", 0
			}
		}
	}
	for _, c := range n.Content {
		redact(c)
	}
}
