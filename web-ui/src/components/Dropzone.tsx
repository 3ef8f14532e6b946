// A file drop area that is also a keyboard-reachable file picker.
import { useRef, useState } from 'preact/hooks';

export function Dropzone({ accept, label, file, onFile }: { accept: string; label: string; file: File | null; onFile: (f: File) => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  return (
    <div
      class={`dropzone ${over ? 'over' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        const f = e.dataTransfer?.files?.[0];
        if (f) onFile(f);
      }}
    >
      <p>{file ? `${file.name} (${file.size.toLocaleString()} bytes)` : label}</p>
      <button type="button" onClick={() => input.current?.click()}>
        Choose a file…
      </button>
      <input
        ref={input}
        type="file"
        accept={accept}
        class="visually-hidden"
        tabIndex={-1}
        aria-label={label}
        onChange={(e) => {
          const f = (e.currentTarget as HTMLInputElement).files?.[0];
          if (f) onFile(f);
        }}
      />
    </div>
  );
}
