package manifest

import (
	"bytes"
	"errors"
	"io"
	"runtime"

	"gopkg.in/yaml.v3"
)

// The YAML of a large manifest is parsed in parts, in parallel: the
// services section, where nearly all of a large manifest's text is, is
// cut between services and each part is parsed on its own; the rest of
// the document is parsed with the section blanked out (its lines kept, so
// that every node keeps its line), and the parts' mappings are grafted in
// as the section's value.
//
// The cut is made only where it cannot change what the text means: the
// section is a block mapping under a bare "services:" key at the start of
// a line, its entries start at one indentation, and the text holds no
// anchor, alias, tag, merge key, tab, directive or document marker (which
// could tie one part to another). Whenever a condition does not hold, or
// any part does not parse, the whole text is parsed at once as before,
// which also gives the errors their usual messages.

// splitMin is the size from which a manifest is parsed in parts.
const splitMin = 64 << 10

// splitParse returns the document node of text, parsed in parts, or
// false when text is not parsed that way.
func splitParse(text []byte) (*yaml.Node, bool) {
	procs := runtime.GOMAXPROCS(0)
	if len(text) < splitMin || procs < 2 {
		return nil, false
	}
	return parseParts(text, 4*procs)
}

// parseParts parses text as splitParse does, in up to n parts.
func parseParts(text []byte, n int) (*yaml.Node, bool) {
	if bytes.ContainsAny(text, "&*!\t%") || bytes.Contains(text, []byte("<<")) ||
		bytes.HasPrefix(text, []byte("\xef\xbb\xbf")) || bytes.IndexByte(text, 0) >= 0 {
		return nil, false
	}
	lines := lineStarts(text)
	section, end, entries, ok := servicesBlock(text, lines)
	if !ok {
		return nil, false
	}
	// Parts of about as many entries each, at most n.
	n = min(len(entries), n)
	cuts := make([]int, 0, n+1) // indices into lines
	for i := range n {
		cuts = append(cuts, entries[i*len(entries)/n])
	}
	cuts = append(cuts, end)
	parts := make([]*yaml.Node, n)
	failed := make([]bool, n)
	eachParallel(n, func(i int) {
		from, to := lines[cuts[i]], offset(text, lines, cuts[i+1])
		doc, ok := parseOne(text[from:to])
		if !ok || doc.Content[0].Kind != yaml.MappingNode {
			failed[i] = true
			return
		}
		parts[i] = doc.Content[0]
		shiftLines(parts[i], cuts[i])
	})
	for _, f := range failed {
		if f {
			return nil, false
		}
	}
	// The rest of the document, with the section's lines left empty.
	rest := make([]byte, 0, len(text))
	rest = append(rest, text[:lines[section+1]]...)
	for _, c := range text[lines[section+1]:offset(text, lines, end)] {
		if c == '\n' {
			rest = append(rest, c)
		}
	}
	rest = append(rest, text[offset(text, lines, end):]...)
	doc, ok := parseOne(rest)
	if !ok || doc.Content[0].Kind != yaml.MappingNode {
		return nil, false
	}
	root := doc.Content[0]
	var value *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "services" && k.Line == section+1 && k.Column == 1 {
			if value != nil || v.Kind != yaml.ScalarNode || v.Tag != "!!null" || v.Value != "" {
				return nil, false
			}
			value = v
		}
	}
	if value == nil {
		return nil, false
	}
	var content []*yaml.Node
	for _, p := range parts {
		content = append(content, p.Content...)
	}
	*value = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: content, Line: parts[0].Line, Column: parts[0].Column}
	return doc, true
}

// parseOne parses text holding one YAML document with content, and
// returns its document node.
func parseOne(text []byte) (*yaml.Node, bool) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&doc); err != nil || len(doc.Content) != 1 {
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return &doc, true
}

// lineStarts returns the offset of the start of each line of text.
func lineStarts(text []byte) []int {
	starts := make([]int, 1, bytes.Count(text, []byte("\n"))+1)
	for i, c := range text {
		if c == '\n' && i+1 < len(text) {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// offset is where line i starts, or the end of text past the last line.
func offset(text []byte, lines []int, i int) int {
	if i < len(lines) {
		return lines[i]
	}
	return len(text)
}

// servicesBlock finds the services section: the index of its key's line,
// the index of the line after its block (len(lines) at the end of the
// text) and the indices of the lines where its entries start, all at one
// indentation. ok is false when the text is not one that splitParse cuts.
func servicesBlock(text []byte, lines []int) (section, end int, entries []int, ok bool) {
	section = -1
	for i := range lines {
		line := lineText(text, lines, i)
		if bytes.HasPrefix(line, []byte("---")) || bytes.HasPrefix(line, []byte("...")) {
			return 0, 0, nil, false // a document marker
		}
		if len(line) == 0 || line[0] == ' ' || line[0] == '#' {
			continue
		}
		if section >= 0 && end == 0 {
			end = i
		}
		if bytes.Equal(bytes.TrimRight(line, " "), []byte("services:")) {
			if section >= 0 {
				return 0, 0, nil, false // twice: left to the decoder to report
			}
			section = i
		}
	}
	if section < 0 {
		return 0, 0, nil, false
	}
	if end == 0 {
		end = len(lines)
	}
	indent := -1
	for i := section + 1; i < end; i++ {
		line := lineText(text, lines, i)
		spaces := len(line) - len(bytes.TrimLeft(line, " "))
		body := line[spaces:]
		if len(body) == 0 || body[0] == '#' {
			continue // blank, or a comment
		}
		if indent < 0 {
			indent = spaces
		}
		switch {
		case spaces < indent:
			return 0, 0, nil, false
		case spaces > indent:
			continue
		}
		// An entry: a plain key.
		if c := body[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return 0, 0, nil, false
		}
		entries = append(entries, i)
	}
	if indent <= 0 || len(entries) == 0 {
		return 0, 0, nil, false
	}
	return section, end, entries, true
}

// lineText is line i of text without its line break.
func lineText(text []byte, lines []int, i int) []byte {
	line := text[lines[i]:offset(text, lines, i+1)]
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// shiftLines adds by to the line of n and of every node under it.
func shiftLines(n *yaml.Node, by int) {
	n.Line += by
	for _, c := range n.Content {
		shiftLines(c, by)
	}
}
