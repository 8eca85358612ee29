// The benchmarks' command-line options: node's parseArgs, plus --help (the options and their
// defaults) and a one-line error naming a bad flag, instead of a stack trace.
import { basename } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<T extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: T }>>;

export function benchArgs<T extends Options>(options: T): Parsed<T> {
  const name = basename(process.argv[1] ?? 'bench', '.js');
  const flags = Object.entries(options).map(([flag, o]) =>
    o.type === 'boolean' ? `[--${flag}]` : `[--${flag} <value>${o.default === undefined ? '' : ` (default ${String(o.default)})`}]`,
  );
  const usage = `usage: node dist/bench/${name}.js ${flags.join(' ')}`;
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    process.exit(0);
  }
  try {
    return parseArgs({ args: argv, options });
  } catch (error) {
    console.error(`bench/${name}: ${error instanceof Error ? error.message : String(error)}\n${usage}`);
    process.exit(2);
  }
}
