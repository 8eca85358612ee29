// `moa maps`: generate with MoA only to see where it routed: per-layer and mean routing maps and
// per-subject attention maps, as heatmaps over the image.
import { Command } from 'commander';
import { generateWithMoA, type PersonalGenerateFlags } from './generate-moa.js';
import { addModelOptions, addSamplingOptions, addSubjectOptions } from './personal.js';

export function mapsCommand(): Command {
  const command = new Command('maps').description('generate with MoA and write only its routing and subject-attention maps (heatmaps over the image)');
  addSubjectOptions(addSamplingOptions(addModelOptions(command, { moa: 'required' })));
  return command
    .option('--out <dir>', 'folder for routing-<layer>.png, routing-mean.png and subject-<word>.png', 'maps')
    .option('--json', 'print the parameters and the files as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa maps --model ./sd15 --moa moa.safetensors --prompt "a man and a woman hiking" --subject man=a.png --subject woman=b.png --seed 7 --out maps/\n' +
        '\nrouting maps show r1, the weight of the personal branch (0 = base model, 1 = subject); subject maps are scaled to their peak.',
    )
    .action(async (flags: Omit<PersonalGenerateFlags, 'batch' | 'maps'> & { out: string }) => {
      await generateWithMoA({ ...flags, batch: 1, maps: flags.out }, { mapsOnly: true });
    });
}
