// The prompt's words as the server matches subject words (CLIP's pre-tokenizer: runs of letters,
// single digits, case-insensitive), and the highlighted mirror drawn behind the prompt box.

// CLIP's split: contractions ('s, 't, …) are pieces of their own and never words.
const PIECE = /'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}/giu;

/** Each piece that is a word: { word (lower case), start, end } in the original text. */
function wordSpans(prompt) {
  const spans = [];
  for (const m of prompt.matchAll(PIECE)) {
    if (m[0].startsWith("'")) continue;
    spans.push({ word: m[0].normalize('NFC').toLowerCase(), start: m.index, end: m.index + m[0].length });
  }
  return spans;
}

/** The distinct words of a prompt, in order. */
export function promptWords(prompt) {
  return [...new Set(wordSpans(prompt).map((s) => s.word))];
}

/**
 * Redraws the mirror: the prompt's text with the first occurrence of each bound word (the one the
 * server binds) in a <mark> of its subject's colour. `colourOf(word)` is a colour index or -1.
 */
export function renderMirror(mirror, prompt, colourOf) {
  const marked = new Map();
  for (const span of wordSpans(prompt)) {
    if (!marked.has(span.word) && colourOf(span.word) >= 0) marked.set(span.word, span);
  }
  const spans = [...marked.values()].sort((a, b) => a.start - b.start);
  const parts = [];
  let at = 0;
  for (const span of spans) {
    parts.push(document.createTextNode(prompt.slice(at, span.start)));
    const mark = document.createElement('mark');
    mark.className = `subject-${colourOf(span.word)}`;
    mark.textContent = prompt.slice(span.start, span.end);
    parts.push(mark);
    at = span.end;
  }
  // A trailing newline needs a character after it to take up its line, as in the textarea.
  parts.push(document.createTextNode(prompt.slice(at) + '\u200b'));
  mirror.replaceChildren(...parts);
}
