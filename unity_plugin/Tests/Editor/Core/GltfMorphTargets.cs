using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using NUnit.Framework;

namespace AvatarBridge.Core.Tests
{
    /// <summary>A glTF mesh's morph target names (mesh.extras.targetNames) and the nodes that use it.</summary>
    public sealed class GltfMesh
    {
        /// <summary>mesh.name</summary>
        public string Name;
        /// <summary>Names of the nodes instancing the mesh (Unity importers name the GameObject after the node).</summary>
        public List<string> NodeNames = new List<string>();
        /// <summary>mesh.extras.targetNames</summary>
        public List<string> TargetNames = new List<string>();
        /// <summary>Morph targets per primitive, as counted in primitives[].targets.</summary>
        public List<int> TargetsPerPrimitive = new List<int>();
    }

    /// <summary>Reads the JSON chunk of a binary glTF (.glb) straight from the file, as the tests need it.</summary>
    public static class GltfMorphTargets
    {
        /// <summary>Directory of the shared test media (../shared/data beside the repository), or null.</summary>
        public static string SharedDataDir()
        {
            string env = Environment.GetEnvironmentVariable("AVATAR_BRIDGE_SHARED_DATA");
            if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
            string dir = Directory.GetCurrentDirectory();
            for (int up = 0; up < 6 && dir != null; up++)
            {
                string candidate = Path.Combine(Path.Combine(Path.Combine(dir, ".."), "shared"), "data");
                if (Directory.Exists(Path.Combine(candidate, "avatars"))) return Path.GetFullPath(candidate);
                dir = Path.GetDirectoryName(dir);
            }
            return null;
        }

        /// <summary>The path of a shared avatar, or Assert.Ignore naming what is missing.</summary>
        public static string Avatar(string file)
        {
            string dir = SharedDataDir();
            string path = dir == null ? null : Path.Combine(Path.Combine(dir, "avatars"), file);
            if (path == null || !File.Exists(path))
                Assert.Ignore("shared test avatar avatars/" + file + " is missing (set AVATAR_BRIDGE_SHARED_DATA to ../shared/data)");
            return path;
        }

        /// <summary>Meshes of a .glb with their morph target names.</summary>
        public static List<GltfMesh> Read(string glbPath)
        {
            byte[] bytes = File.ReadAllBytes(glbPath);
            if (bytes.Length < 20 || BitConverter.ToUInt32(bytes, 0) != 0x46546C67)  // "glTF"
                throw new InvalidDataException(glbPath + " is not a binary glTF file");
            int chunkLength = (int)BitConverter.ToUInt32(bytes, 12);
            if (BitConverter.ToUInt32(bytes, 16) != 0x4E4F534A)  // "JSON"
                throw new InvalidDataException(glbPath + ": first chunk is not JSON");
            string json = Encoding.UTF8.GetString(bytes, 20, chunkLength);
            var root = (Dictionary<string, object>)new MiniJson(json).Parse();
            var meshes = new List<GltfMesh>();
            foreach (Dictionary<string, object> m in (List<object>)root["meshes"])
            {
                var mesh = new GltfMesh { Name = m.ContainsKey("name") ? (string)m["name"] : "" };
                object extras;
                if (m.TryGetValue("extras", out extras))
                {
                    object names;
                    if (((Dictionary<string, object>)extras).TryGetValue("targetNames", out names))
                        foreach (object n in (List<object>)names) mesh.TargetNames.Add((string)n);
                }
                foreach (Dictionary<string, object> p in (List<object>)m["primitives"])
                {
                    object targets;
                    mesh.TargetsPerPrimitive.Add(p.TryGetValue("targets", out targets) ? ((List<object>)targets).Count : 0);
                }
                meshes.Add(mesh);
            }
            foreach (Dictionary<string, object> node in (List<object>)root["nodes"])
            {
                object mi;
                if (node.TryGetValue("mesh", out mi))
                    meshes[(int)(double)mi].NodeNames.Add(node.ContainsKey("name") ? (string)node["name"] : "");
            }
            return meshes;
        }

        /// <summary>The meshes that have morph targets, as the mapper sees them (named after their node).</summary>
        public static List<RigMesh> RigMeshes(string glbPath)
        {
            var result = new List<RigMesh>();
            foreach (var m in Read(glbPath))
                if (m.TargetNames.Count > 0)
                    result.Add(new RigMesh(m.NodeNames.Count > 0 ? m.NodeNames[0] : m.Name, m.TargetNames));
            return result;
        }
    }

    /// <summary>A small strict JSON reader (objects, arrays, strings, numbers, true/false/null): enough for glTF.</summary>
    sealed class MiniJson
    {
        readonly string s;
        int i;

        public MiniJson(string text) { s = text; }

        public object Parse()
        {
            object v = Value();
            Skip();
            if (i != s.Length) throw Error("trailing characters");
            return v;
        }

        object Value()
        {
            Skip();
            if (i >= s.Length) throw Error("unexpected end");
            char c = s[i];
            if (c == '{') return Obj();
            if (c == '[') return Arr();
            if (c == '"') return Str();
            if (Lit("true")) return true;
            if (Lit("false")) return false;
            if (Lit("null")) return null;
            return Num();
        }

        Dictionary<string, object> Obj()
        {
            var d = new Dictionary<string, object>();
            i++;
            Skip();
            if (s[i] == '}') { i++; return d; }
            while (true)
            {
                Skip();
                string k = Str();
                Skip();
                Expect(':');
                d[k] = Value();
                Skip();
                if (s[i] == ',') { i++; continue; }
                Expect('}');
                return d;
            }
        }

        List<object> Arr()
        {
            var l = new List<object>();
            i++;
            Skip();
            if (s[i] == ']') { i++; return l; }
            while (true)
            {
                l.Add(Value());
                Skip();
                if (s[i] == ',') { i++; continue; }
                Expect(']');
                return l;
            }
        }

        string Str()
        {
            Expect('"');
            var sb = new StringBuilder();
            while (s[i] != '"')
            {
                char c = s[i++];
                if (c != '\\') { sb.Append(c); continue; }
                char e = s[i++];
                switch (e)
                {
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'u':
                        sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber));
                        i += 4;
                        break;
                    default: sb.Append(e); break;  // " \ /
                }
            }
            i++;
            return sb.ToString();
        }

        double Num()
        {
            int start = i;
            while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
            if (start == i) throw Error("unexpected character '" + s[i] + "'");
            return double.Parse(s.Substring(start, i - start), CultureInfo.InvariantCulture);
        }

        bool Lit(string word)
        {
            if (string.CompareOrdinal(s, i, word, 0, word.Length) != 0) return false;
            i += word.Length;
            return true;
        }

        void Expect(char c)
        {
            if (i >= s.Length || s[i] != c) throw Error("expected '" + c + "'");
            i++;
        }

        void Skip()
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
        }

        Exception Error(string what) { return new FormatException("JSON: " + what + " at offset " + i); }
    }
}
