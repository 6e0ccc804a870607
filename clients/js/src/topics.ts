/**
 * Topic patterns, as the server defines them: an exact topic, a prefix
 * ending in `*` (`device:*`), or `*` for everything.
 */

export function topicMatches(pattern: string, topic: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return topic.startsWith(pattern.slice(0, -1));
  return pattern === topic;
}
