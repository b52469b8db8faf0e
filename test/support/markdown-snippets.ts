/**
 * The TypeScript blocks of a Markdown file (fenced with ```ts or ```typescript, indented
 * or not), with the line each starts on, so the docs test can compile them.
 */

/** One fenced TypeScript block. */
export interface MarkdownSnippet {
  /** The 1-based line of the block's first code line. */
  line: number;
  /** The code, with the fence's indentation removed. */
  code: string;
}

const OPENING = /^(\s*)```(?:ts|typescript)\s*$/;

/** Every TypeScript block of `markdown`, in order. */
export function extractTypeScriptBlocks(markdown: string): MarkdownSnippet[] {
  const lines = markdown.split('\n');
  const blocks: MarkdownSnippet[] = [];
  for (let index = 0; index < lines.length; index += 1) {
    const opening = OPENING.exec(lines[index] ?? '');
    if (!opening) continue;
    const indent = opening[1] ?? '';
    const code: string[] = [];
    const start = index + 1;
    for (index = start; index < lines.length && (lines[index] ?? '').trim() !== '```'; index += 1) {
      const line = lines[index] ?? '';
      code.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart());
    }
    blocks.push({ line: start + 1, code: code.join('\n') });
  }
  return blocks;
}
