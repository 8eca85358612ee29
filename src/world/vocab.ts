// The world's named things: subject classes, their attributes and values, scene kinds, times of
// day and props. Everything is a plain string so a recogniser can be trained per attribute and
// captions stay inside a closed vocabulary.
import type { RGB } from './raster.js';

export const PERSON_CLASSES = ['man', 'woman', 'boy', 'girl'] as const;
export const PET_CLASSES = ['dog', 'cat'] as const;
/** Every subject class; the class name is also the caption word for it. */
export const CLASSES = [...PERSON_CLASSES, ...PET_CLASSES] as const;

export type PersonClass = (typeof PERSON_CLASSES)[number];
export type PetClass = (typeof PET_CLASSES)[number];
export type SubjectClass = (typeof CLASSES)[number];

export function isPersonClass(c: string): c is PersonClass {
  return (PERSON_CLASSES as readonly string[]).includes(c);
}

export const SKIN_TONES = ['pale', 'light', 'tan', 'olive', 'brown', 'dark'] as const;
export const HAIR_STYLES = ['short', 'long', 'curly', 'bun', 'bald'] as const;
export const HAIR_COLOURS = ['black', 'brown', 'blonde', 'red', 'grey', 'pink', 'blue'] as const;
export const CLOTHES_COLOURS = ['red', 'orange', 'yellow', 'green', 'teal', 'blue', 'purple', 'pink', 'white', 'black'] as const;
export const CLOTHES_PATTERNS = ['plain', 'stripes', 'dots', 'checks'] as const;
export const TROUSERS_COLOURS = ['navy', 'black', 'grey', 'brown', 'khaki'] as const;
export const GLASSES = ['no', 'yes'] as const;
export const HATS = ['none', 'cap', 'beanie'] as const;

export const FUR_COLOURS = ['black', 'white', 'brown', 'ginger', 'grey', 'cream', 'golden'] as const;
export const FUR_PATTERNS = ['plain', 'spots', 'stripes', 'patches'] as const;
/** The second fur colour of a pattern; 'none' exactly when the pattern is plain. */
export const MARKING_COLOURS = ['none', 'black', 'white', 'brown', 'ginger', 'grey'] as const;
export const EAR_TYPES = ['pointy', 'floppy', 'round'] as const;
export const TAIL_TYPES = ['long', 'short', 'curly'] as const;
export const COLLAR_COLOURS = ['none', 'red', 'blue', 'green', 'yellow', 'purple', 'pink'] as const;

/**
 * Per class, its attributes and the values each may take. Hair colour is 'none' exactly when
 * the hair style is bald; a bun is never under a hat; children are never bald; women and girls
 * wear dresses, so they have no trousers colour.
 */
const PERSON_ATTRIBUTES = {
  skin: SKIN_TONES,
  hair: HAIR_STYLES,
  hair_colour: ['none', ...HAIR_COLOURS],
  clothes_colour: CLOTHES_COLOURS,
  clothes_pattern: CLOTHES_PATTERNS,
  glasses: GLASSES,
  hat: HATS,
} as const;
const PET_ATTRIBUTES = {
  fur_colour: FUR_COLOURS,
  fur_pattern: FUR_PATTERNS,
  marking_colour: MARKING_COLOURS,
  ears: EAR_TYPES,
  tail: TAIL_TYPES,
  collar: COLLAR_COLOURS,
} as const;

export const CLASS_ATTRIBUTES: Readonly<Record<SubjectClass, Readonly<Record<string, readonly string[]>>>> = {
  man: { ...PERSON_ATTRIBUTES, trousers: TROUSERS_COLOURS },
  woman: PERSON_ATTRIBUTES,
  boy: { ...PERSON_ATTRIBUTES, hair: HAIR_STYLES.filter((h) => h !== 'bald'), hair_colour: HAIR_COLOURS, trousers: TROUSERS_COLOURS },
  girl: { ...PERSON_ATTRIBUTES, hair: HAIR_STYLES.filter((h) => h !== 'bald'), hair_colour: HAIR_COLOURS },
  dog: PET_ATTRIBUTES,
  cat: PET_ATTRIBUTES,
};

/** Every attribute name with every value it takes in any class (for per-attribute recognisers). */
export const ATTRIBUTES: Readonly<Record<string, readonly string[]>> = (() => {
  const all: Record<string, string[]> = {};
  for (const attributes of Object.values(CLASS_ATTRIBUTES)) {
    for (const [name, values] of Object.entries(attributes)) {
      const list = (all[name] ??= []);
      for (const v of values) if (!list.includes(v)) list.push(v);
    }
  }
  return all;
})();

export const SCENE_KINDS = ['beach', 'forest', 'city', 'snow', 'room', 'park', 'desert', 'mountains'] as const;
export type SceneKind = (typeof SCENE_KINDS)[number];

export const TIMES = ['day', 'dusk', 'night'] as const;
export type TimeOfDay = (typeof TIMES)[number];

export const FACINGS = ['left', 'right'] as const;
export type Facing = (typeof FACINGS)[number];

/** The props each scene kind may show (its JSON lists those drawn). */
export const SCENE_PROPS: Readonly<Record<SceneKind, readonly string[]>> = {
  beach: ['sun', 'moon', 'stars', 'cloud', 'sea', 'wave', 'parasol', 'ball'],
  forest: ['sun', 'moon', 'stars', 'tree', 'pine', 'bush', 'mushroom'],
  city: ['moon', 'stars', 'building', 'window', 'street', 'lamp'],
  snow: ['sun', 'moon', 'stars', 'snowflake', 'pine', 'snowman', 'hill'],
  room: ['wall', 'floor', 'window', 'lamp', 'sofa', 'picture', 'rug', 'plant'],
  park: ['sun', 'moon', 'stars', 'cloud', 'tree', 'bench', 'path', 'flower'],
  desert: ['sun', 'moon', 'stars', 'dune', 'cactus', 'rock'],
  mountains: ['sun', 'moon', 'stars', 'cloud', 'mountain', 'lake', 'pine'],
};

/** Named colours (flat, saturated enough to read at 64 px). */
export const COLOURS: Readonly<Record<string, RGB>> = {
  red: [214, 40, 40],
  orange: [244, 132, 30],
  yellow: [246, 208, 50],
  green: [56, 160, 72],
  teal: [24, 150, 150],
  blue: [44, 94, 206],
  purple: [128, 64, 176],
  pink: [236, 120, 178],
  white: [244, 244, 240],
  black: [34, 34, 38],
  navy: [34, 44, 96],
  grey: [128, 128, 132],
  brown: [118, 74, 40],
  khaki: [180, 160, 106],
  blonde: [238, 204, 110],
  ginger: [214, 116, 44],
  cream: [240, 226, 190],
  golden: [218, 166, 64],
};

export const SKIN_COLOURS: Readonly<Record<(typeof SKIN_TONES)[number], RGB>> = {
  pale: [255, 224, 204],
  light: [244, 200, 166],
  tan: [222, 168, 120],
  olive: [188, 146, 96],
  brown: [142, 96, 60],
  dark: [92, 60, 40],
};
